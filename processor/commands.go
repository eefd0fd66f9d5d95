package processor

import (
	"errors"
	"fmt"

	"github.com/partita-dev/partita/access"
)

// ErrUnknownCommand is returned by [Runtime.Command] for a command the
// entity does not have.
var ErrUnknownCommand = errors.New("unknown command")

// CommandInfo is what the gateway checks of a command before writing it.
type CommandInfo struct {
	// Access is the command's rule: its own, else its entity's, else
	// undeclared (the application's default applies).
	Access access.Rule
	// MaxValue is the largest payload the entity accepts, in bytes.
	MaxValue int
	// Validate decodes a payload as the handler will (nil: it fits; else
	// an error wrapping codec.ErrPayload, usually a *codec.PayloadError).
	Validate func(data []byte) error
}

// Command describes command of entity, for the gateway. It fails with
// ErrUnknownEntity or ErrUnknownCommand (stateless consumers have no
// commands).
func (r *Runtime) Command(entity, command string) (CommandInfo, error) {
	for _, d := range r.defs {
		if d.Name != entity {
			continue
		}
		if _, ok := d.Commands[command]; !ok {
			return CommandInfo{}, fmt.Errorf("%w: entity %s has no command %q", ErrUnknownCommand, entity, command)
		}
		info := CommandInfo{Access: d.CommandAccess[command].Or(d.Access), MaxValue: d.MaxValue, Validate: d.Validators[command]}
		if info.Validate == nil {
			info.Validate = func([]byte) error { return nil }
		}
		return info, nil
	}
	return CommandInfo{}, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
}

// ViewAccess is the access rule of view (undeclared: the application's
// default applies); ErrUnknownView when there is no such view.
func (r *Runtime) ViewAccess(view string) (access.Rule, error) {
	for _, v := range r.views {
		if v.Name == view {
			return v.Access, nil
		}
	}
	return access.Rule{}, fmt.Errorf("%w: %q", ErrUnknownView, view)
}

// EntityAccess is the entity-wide access rule of entity (undeclared: the
// application's default applies), which guards reads of its state;
// ErrUnknownEntity when there is no such entity.
func (r *Runtime) EntityAccess(entity string) (access.Rule, error) {
	for _, d := range r.defs {
		if d.Name == entity {
			return d.Access, nil
		}
	}
	return access.Rule{}, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
}
