package overlay

import "errors"

func (a *applier) modules() error { return errors.New("--module: not implemented yet") }
