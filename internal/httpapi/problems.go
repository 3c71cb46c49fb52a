package httpapi

import (
	"context"
	"net/http"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/pages"
	"github.com/valhalla-platform/valhalla/internal/problem"
)

// problemPage is a pages.Page as the strict server's response.
type problemPage struct{ pages.Page }

func (p problemPage) VisitGetProblemTypeResponse(w http.ResponseWriter) error   { return p.Write(w) }
func (p problemPage) VisitListProblemTypesResponse(w http.ResponseWriter) error { return p.Write(w) }

// ListProblemTypes serves the page listing every problem type.
func (s *server) ListProblemTypes(context.Context, api.ListProblemTypesRequestObject) (api.ListProblemTypesResponseObject, error) {
	return problemPage{s.pages.ProblemTypes()}, nil
}

// GetProblemType serves the page a problem's type resolves to. The
// contract's enum admits only known names; another is a 404 all the same.
func (s *server) GetProblemType(_ context.Context, req api.GetProblemTypeRequestObject) (api.GetProblemTypeResponseObject, error) {
	pg, ok := s.pages.ProblemType(string(req.Name))
	if !ok {
		return nil, problem.New(http.StatusNotFound, problem.TypeNotFound, "no problem type is named "+string(req.Name))
	}
	return problemPage{pg}, nil
}
