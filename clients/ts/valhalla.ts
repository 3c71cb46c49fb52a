// The typed TypeScript client for the Valhalla API.
//
// Every request and response type comes from gen/ts/valhalla.ts, which
// openapi-typescript generates from openapi.yaml (npm run gen:ts); the calls
// go through openapi-fetch. This file only adds the connection settings.
//
//   const api = createValhallaClient({ baseUrl: "http://127.0.0.1:8080" });
//   const { data, error, response } = await api.POST("/system/logs", {
//     body: { level: "WARNING", category: "auth", message: "new device" },
//   });

import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { paths } from "../../gen/ts/valhalla.js";

// The generated types (paths, components, operations, and one alias per
// schema such as SystemLog and ProblemDetails), for callers of this client.
export type * from "../../gen/ts/valhalla.js";

/** A Valhalla client: openapi-fetch typed by the contract's paths. */
export type ValhallaClient = Client<paths>;

/** Settings for {@link createValhallaClient}. */
export interface ValhallaClientOptions {
  /** Where Valhalla serves, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` on every request when given. */
  token?: string;
  /**
   * The `X-Request-ID` to send: one id for every request, or a function called
   * for each request. A request that sets the header itself
   * (`params.header["X-Request-ID"]`) keeps its own. Without it the server
   * mints one and echoes it in the response.
   */
  requestId?: string | (() => string);
  /** The fetch to use; defaults to the global fetch. */
  fetch?: ClientOptions["fetch"];
}

/** Creates a client for the Valhalla API at options.baseUrl. */
export function createValhallaClient(options: ValhallaClientOptions): ValhallaClient {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) {
    headers["Authorization"] = `Bearer ${options.token}`;
  }
  const { requestId } = options;
  if (typeof requestId === "string") {
    headers["X-Request-ID"] = requestId;
  }
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    headers,
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  });
  if (typeof requestId === "function") {
    client.use({
      onRequest({ request }) {
        if (!request.headers.has("X-Request-ID")) {
          request.headers.set("X-Request-ID", requestId());
        }
        return request;
      },
    });
  }
  return client;
}

/**
 * The problem of a failed call: its `error` when the response really is
 * `application/problem+json`, typed as the operation declares it (a
 * ProblemDetails, or a HealthProblem or ReadinessProblem for the probes).
 * It returns undefined for a successful call and for an error answered with
 * another media type (say, by a proxy in front of Valhalla).
 */
export function problemOf<E>(result: { error?: E; response: Response }): E | undefined {
  if (result.error === undefined) {
    return undefined;
  }
  const mediaType = result.response.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
  return mediaType === "application/problem+json" ? result.error : undefined;
}

// The live tail: follow() and its stream parser.
export * from "./follow.js";
