package walelog

// UserError is an error reported the way WAL-E reports user errors: one
// record from wal_e.main with msg, detail and hint, then exit status 1
// (or Code when set).
type UserError struct {
	Msg, Detail, Hint string
	Critical          bool
	Code              int
}

func (e *UserError) Error() string {
	s := e.Msg
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Status is the exit status the error maps to.
func (e *UserError) Status() int {
	if e.Code != 0 {
		return e.Code
	}
	return 1
}
