package core

// Runners runs handler calls on goroutines that outlive a call. A new
// goroutine per call starts on a small stack and grows it again every time
// (decoding JSON made that a tenth of the entity path's CPU in issue 7's
// profile). A call whose caller gave up on it (a timeout) keeps its
// goroutine until the handler returns; the goroutine then serves again.
// The zero value is not usable; a nil *Runners starts a goroutine per call.
type Runners struct{ idle chan *runner }

type runner struct{ jobs chan func() }

// NewRunners returns runners that keep up to n idle goroutines.
func NewRunners(n int) *Runners { return &Runners{idle: make(chan *runner, n)} }

// Go runs f on an idle goroutine, or a new one.
func (rs *Runners) Go(f func()) {
	if rs == nil {
		go f()
		return
	}
	var r *runner
	select {
	case r = <-rs.idle:
	default:
		r = &runner{jobs: make(chan func())}
		go r.serve(rs)
	}
	r.jobs <- f
}

func (r *runner) serve(rs *Runners) {
	for f := range r.jobs {
		f()
		select {
		case rs.idle <- r:
		default:
			return // enough idle goroutines
		}
	}
}

// Close ends the idle goroutines; those running a call end after it.
func (rs *Runners) Close() {
	for {
		select {
		case r := <-rs.idle:
			close(r.jobs)
		default:
			return
		}
	}
}
