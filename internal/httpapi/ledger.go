package httpapi

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/gen/db"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/requestid"
)

// Defaults the contract declares for the feed and the ledger.
const (
	defaultFeedLimit     = 100
	defaultUnsealedLimit = 100
)

// GetSystemLogFeed returns sealed entries after a seq, ascending.
func (s *server) GetSystemLogFeed(ctx context.Context, req api.GetSystemLogFeedRequestObject) (api.GetSystemLogFeedResponseObject, error) {
	p := req.Params
	filter := filterOf(p.Level, p.MinLevel, p.Category, p.CorrelationId, p.UserId, p.TraceId, p.Since, p.Until)
	after := int64(0)
	if p.After != nil {
		after = *p.After
	}
	limit := int32(defaultFeedLimit)
	if p.Limit != nil {
		limit = *p.Limit
	}
	if err := s.readAllowed(ctx); err != nil {
		return nil, err
	}
	page, err := s.Store.Feed(ctx, filter, after, limit)
	if err != nil {
		return nil, err
	}
	size := logstore.SealedSize(page.Items)
	s.chargeRead(ctx, size)
	body := api.SystemLogFeed{
		Items:     make([]api.SystemLog, len(page.Items)),
		Missing:   make([]api.MissingEntry, len(page.Missing)),
		NextAfter: page.NextAfter,
	}
	for i, e := range page.Items {
		seal := e.Seal
		body.Items[i] = logToAPI(e.SystemLog, &seal)
	}
	for i, m := range page.Missing {
		body.Missing[i] = api.MissingEntry{Seq: m.Seq, Id: m.ID, LeafHash: m.LeafHash}
	}
	return feedResponse{body: body, requestID: requestid.FromContext(ctx), size: size}, nil
}

// GetSystemLogProof proves an entry's inclusion in a signed tree.
func (s *server) GetSystemLogProof(ctx context.Context, req api.GetSystemLogProofRequestObject) (api.GetSystemLogProofResponseObject, error) {
	size := int64(0)
	if req.Params.TreeSize != nil {
		size = *req.Params.TreeSize
	}
	p, err := s.Ledger.ProveEntry(ctx, req.Id, size)
	if err != nil {
		return nil, err
	}
	return api.GetSystemLogProof200JSONResponse{
		Body: api.InclusionProof{
			Id:                 req.Id,
			Seq:                p.Seq,
			LeafHash:           p.LeafHash[:],
			TreeSize:           p.Checkpoint.Size,
			Proof:              hashesToAPI(p.Proof),
			Checkpoint:         p.Checkpoint.Note,
			CheckpointSignedAt: p.Checkpoint.SignedAt,
		},
		Headers: api.GetSystemLogProof200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetLedgerCheckpoint serves the latest signed checkpoint as is.
func (s *server) GetLedgerCheckpoint(ctx context.Context, _ api.GetLedgerCheckpointRequestObject) (api.GetLedgerCheckpointResponseObject, error) {
	cp, err := s.Ledger.Latest(ctx)
	if err != nil {
		return nil, err
	}
	return api.GetLedgerCheckpoint200TextResponse{
		Body:    cp.Note,
		Headers: api.GetLedgerCheckpoint200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// GetLedgerConsistency proves one signed tree extends another.
func (s *server) GetLedgerConsistency(ctx context.Context, req api.GetLedgerConsistencyRequestObject) (api.GetLedgerConsistencyResponseObject, error) {
	p, err := s.Ledger.Consistency(ctx, req.Params.From, req.Params.To)
	if err != nil {
		return nil, err
	}
	return api.GetLedgerConsistency200JSONResponse{
		Body:    api.ConsistencyProof{From: p.From, To: p.To, Proof: hashesToAPI(p.Proof)},
		Headers: api.GetLedgerConsistency200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// ListUnsealedLogs lists entries stored behind the API's back.
func (s *server) ListUnsealedLogs(ctx context.Context, req api.ListUnsealedLogsRequestObject) (api.ListUnsealedLogsResponseObject, error) {
	limit := int32(defaultUnsealedLimit)
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	rows, err := s.Store.Unsealed(ctx, limit)
	if err != nil {
		return nil, err
	}
	items := make([]api.SystemLog, len(rows))
	for i, r := range rows {
		items[i] = logToAPI(r, nil)
	}
	return api.ListUnsealedLogs200JSONResponse{
		Body:    api.SystemLogBatch{Items: items},
		Headers: api.ListUnsealedLogs200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

// ListLedgerRetirements lists the retention records.
func (s *server) ListLedgerRetirements(ctx context.Context, _ api.ListLedgerRetirementsRequestObject) (api.ListLedgerRetirementsResponseObject, error) {
	rows, err := s.Ledger.Retirements(ctx)
	if err != nil {
		return nil, err
	}
	items := make([]api.Retirement, len(rows))
	for i, r := range rows {
		items[i] = api.Retirement{
			Partition: r.Partition, From: r.From, To: r.To, Policy: r.Policy, SeqRanges: r.SeqRanges,
			Retired: r.Retired, Held: r.Held, RetiredAt: r.RetiredAt, Note: r.Note,
		}
	}
	return api.ListLedgerRetirements200JSONResponse{
		Body:    api.RetirementList{Items: items},
		Headers: api.ListLedgerRetirements200ResponseHeaders{XRequestID: requestid.FromContext(ctx)},
	}, nil
}

func hashesToAPI(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h[:]
	}
	return out
}

// withSeals converts rows to the contract's entries, each with its seal
// if it has one.
func (s *server) withSeals(ctx context.Context, rows []db.SystemLog) ([]api.SystemLog, error) {
	seals, err := s.Store.Seals(ctx, rows)
	if err != nil {
		return nil, err
	}
	out := make([]api.SystemLog, len(rows))
	for i, r := range rows {
		var seal *logstore.Seal
		if v, ok := seals[r.ID]; ok {
			seal = &v
		}
		out[i] = logToAPI(r, seal)
	}
	return out, nil
}
