// Renders the contract this server embeds with Swagger UI. The spec is read
// from this server and its servers list replaced by this origin, so "Try it
// out" calls the server that shows the page and nothing else. Nothing is
// fetched from elsewhere: no validator badge, no fonts, no telemetry.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  fetch("/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (res) {
      if (!res.ok) {
        throw new Error("GET /openapi.json answered " + res.status);
      }
      return res.json();
    })
    .then(function (spec) {
      spec.servers = [{ url: window.location.origin, description: "This server" }];
      window.ui = SwaggerUIBundle({
        spec: spec,
        domNode: root,
        validatorUrl: null,
        deepLinking: true,
        displayOperationId: true,
        persistAuthorization: false,
        withCredentials: false,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      });
    })
    .catch(function (err) {
      root.textContent = "The contract could not be loaded: " + err.message;
    });
})();
