package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Mode is Confluent's registry mode, globally or per subject.
type Mode string

// The modes Eddy serves. Confluent's IMPORT (registration with given ids)
// is not one of them.
const (
	ReadWrite Mode = "READWRITE"
	ReadOnly  Mode = "READONLY"
)

// Errors of modes.
var (
	ErrInvalidMode   = errors.New("invalid mode")                   // 42204
	ErrReadOnlyMode  = errors.New("operation not permitted")        // 42205
	ErrNoSubjectMode = errors.New("subject has no mode of its own") // 40409
)

// ParseMode reads a mode, in any case.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToUpper(s)); m {
	case ReadWrite, ReadOnly:
		return m, nil
	case "IMPORT", "READONLY_OVERRIDE":
		return "", fmt.Errorf("%w: %s is not supported; valid values are READWRITE and READONLY", ErrInvalidMode, m)
	}
	return "", fmt.Errorf("%w: %q; valid values are READWRITE and READONLY", ErrInvalidMode, s)
}

type modeValue struct {
	Mode Mode `json:"mode"`
}

func modeKey(subj string) recordKey {
	k := recordKey{KeyType: "MODE", Magic: 0}
	if subj != "" {
		k.Subject = &subj
	}
	return k
}

// applyModeLocked applies a MODE record. Called with mu held.
func (r *Registry) applyModeLocked(k recordKey, value []byte) error {
	m := Mode("")
	if value != nil {
		var v modeValue
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("bad mode: %w", err)
		}
		m = v.Mode
	}
	if k.Subject == nil {
		if m == "" {
			m = ReadWrite
		}
		r.mode = m
		return nil
	}
	r.subject(*k.Subject).mode = m
	return nil
}

// Mode returns the mode in force for subj ("" asks for the global one).
func (r *Registry) Mode(subj string) Mode {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.modeOf(subj)
}

// SubjectMode returns a subject's own mode, if it has one.
func (r *Registry) SubjectMode(subj string) (Mode, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.subjects[subj]; s != nil && s.mode != "" {
		return s.mode, true
	}
	return "", false
}

func (r *Registry) modeOf(subj string) Mode {
	if s := r.subjects[subj]; subj != "" && s != nil && s.mode != "" {
		return s.mode
	}
	return r.mode
}

// writableLocked refuses a change to subj ("" for the global config) while its
// mode is READONLY. Called with mu held (read).
func (r *Registry) writableLocked(subj string) error {
	if r.modeOf(subj) == ReadOnly {
		if subj == "" {
			return fmt.Errorf("%w: the registry is in read-only mode", ErrReadOnlyMode)
		}
		return fmt.Errorf("%w: subject %s is in read-only mode", ErrReadOnlyMode, subj)
	}
	return nil
}

// SetMode sets the global mode (subj "") or a subject's. Modes can always
// be changed, or a read-only registry could never be opened again.
func (r *Registry) SetMode(ctx context.Context, subj string, m Mode) error {
	if _, err := ParseMode(string(m)); err != nil {
		return err
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	return r.writeLocked(ctx, record(modeKey(subj), modeValue{m}))
}

// DeleteMode drops a subject's own mode (it follows the global one again)
// and returns what it was.
func (r *Registry) DeleteMode(ctx context.Context, subj string) (Mode, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	m, ok := r.SubjectMode(subj)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrSubjectNotFound, subj)
	}
	return m, r.writeLocked(ctx, record(modeKey(subj), nil))
}
