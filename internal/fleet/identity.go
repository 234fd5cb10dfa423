package fleet

import "context"

// ReadIdentity returns the object identity/NAME as Ensure stored it,
// without creating anything: for tools that show partners the fleet's
// host keys and certificate (`wharf user onboard`) and must not found a
// fleet's identity by looking at it. fs.ErrNotExist (wrapped) when no
// daemon has started yet.
func (s *State) ReadIdentity(ctx context.Context, name string) ([]byte, error) {
	data, _, err := s.obj.Get(ctx, identityDir+name)
	return data, err
}
