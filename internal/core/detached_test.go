package core

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/internal/envelope"
	"github.com/partita-dev/partita/internal/topics"
)

// A detached entity's command is recorded as applied when read (a
// redelivery is a duplicate, and runs nothing), and its run answers the
// asker when it returns: the reply; an error reply; or, for a handler that
// panics, replies more than a record holds, or decides more than a reply,
// an AskError and a dead letter.
func TestDetachedRuns(t *testing.T) {
	runs := 0
	def := &Entity{Name: "runner", Kind: KeyValue, Window: 16, Detached: 1, SendsTo: []string{"wf"}, Commands: map[string]Handler{
		"ok": func(in Input) Decision {
			runs++
			if err := HooksOf(in.Ctx).Send(OutCommand{Entity: "wf", Subject: "w1", Command: "beat", Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
				t.Errorf("send: %v", err)
			}
			if err := HooksOf(in.Ctx).Send(OutCommand{Entity: "elsewhere", Subject: "w1", Command: "beat"}); err == nil {
				t.Error("a send to an undeclared entity was taken")
			}
			return Decision{Kind: Reply, Reply: []byte(`"done"`)}
		},
		"no":   func(Input) Decision { return Decision{Kind: Error, ErrCode: "nope", ErrMsg: "refused"} },
		"boom": func(Input) Decision { panic("boom") },
		"big": func(Input) Decision {
			return Decision{Kind: Reply, Reply: []byte(`"` + strings.Repeat("x", 2000) + `"`)}
		},
		"update": func(Input) Decision { return Decision{Kind: Update, State: []byte(`{}`)} },
	}}
	names := topics.Names{App: "app"}
	env := Env{Topics: names, Now: func() time.Time { return time.Unix(0, 0) }, Sleep: func(time.Duration) {}, Epoch: 1, MaxRecord: 1500}
	asked := func(typ string) codec.Attributes {
		return codec.Attributes{ID: typ + "-1", Source: "src", Type: typ, Subject: "w1", Extensions: map[string]string{
			codec.ExtAskFrom: "wf", codec.ExtAskSubject: "w1", codec.ExtAskReply: "done", codec.ExtAskError: "failed"}}
	}
	commands := names.Commands("runner")
	for _, tc := range []struct {
		cmd, answer, code string
		dead              bool
	}{
		{"ok", "done", "", false},
		{"no", "failed", "nope", false},
		{"boom", "failed", CodeDeadLetter, true},
		{"big", "failed", CodeDeadLetter, false},
		{"update", "failed", CodeDeadLetter, true},
	} {
		out := Process(env, def, commands, &envelope.Envelope{}, asked(tc.cmd), Arrival{})
		if out.Job == nil || out.Envelope == nil || len(out.Outputs) != 0 {
			t.Fatalf("%s: %+v; want the command recorded and its run handed back", tc.cmd, out)
		}
		var deadLetters int
		out.Job.dead = func(code, reason string) envelope.Output {
			deadLetters++
			return envelope.Output{Topic: names.DeadLetters()}
		}
		var answers []codec.Event
		var others []string
		out.Job.Run(func(o envelope.Output) {
			if o.Topic != names.Loop("wf") {
				others = append(others, o.Topic)
				return
			}
			ev, err := codec.DecodeEvent(o.Record)
			if err != nil {
				t.Fatal(err)
			}
			answers = append(answers, ev)
		})
		if len(answers) != 1 || answers[0].Type() != tc.answer {
			t.Fatalf("%s: answers %v; want one %s", tc.cmd, answers, tc.answer)
		}
		if tc.code != "" {
			var e AskError
			if err := json.Unmarshal(answers[0].Data(), &e); err != nil || e.Code != tc.code {
				t.Errorf("%s: %s; want code %s", tc.cmd, answers[0].Data(), tc.code)
			}
		}
		if want := map[bool]int{true: 1}[tc.dead]; deadLetters != want {
			t.Errorf("%s: %d dead letters, want %d", tc.cmd, deadLetters, want)
		}
		if tc.cmd == "ok" && (len(others) != 1 || others[0] != names.Commands("wf")) {
			t.Errorf("ok: other records %v; want the command it sent", others)
		}
		// Redelivered: a duplicate, nothing runs again.
		if dup := Process(env, def, commands, out.Envelope, asked(tc.cmd), Arrival{}); !dup.Duplicate || dup.Job != nil {
			t.Errorf("%s redelivered: %+v; want a duplicate with no run", tc.cmd, dup)
		}
	}
	if runs != 1 {
		t.Errorf("ok ran %d times", runs)
	}
}
