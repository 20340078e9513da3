package gpg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const (
	// peekSize is how much of the message is looked at before decrypting:
	// enough for the session key packets of several RSA-4096 recipients.
	peekSize = 4096
	// stderrLimit caps how much of gpg's stderr is kept for error messages.
	stderrLimit = 64 << 10
	// waitDelay bounds how long reaping gpg waits for its stderr to close,
	// in case a process gpg started (gpg-agent) inherited it.
	waitDelay = 5 * time.Second
)

// Decrypt returns the plaintext of the OpenPGP message read from r.
//
// With WALDEN_GPG_SECRET_KEY_PATH it decrypts natively; otherwise (and for
// a nil Crypter) it streams r through `gpg -d -q --batch`. Wrong key,
// corrupt or tampered data and a failing gpg are errors from Decrypt, Read
// or Close. Integrity (the MDC) can only be verified at the end of the
// message, so plaintext must not be trusted before Read returns io.EOF;
// callers that stop early lose that check. Close never closes r; it kills
// and reaps the gpg process if one is still running and returns at once,
// but the goroutine feeding gpg may finish one pending Read of r after
// that, so close r after the returned reader.
func (c *Crypter) Decrypt(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, peekSize)
	prefix, err := br.Peek(peekSize)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("gpg: reading encrypted object: %w", err)
	}
	if !IsEncrypted(prefix) {
		return nil, errors.New("gpg: object is not an OpenPGP public-key encrypted message")
	}
	recipients := messageRecipients(prefix)
	src := &errRecorder{r: br}
	if c != nil && c.secret != nil {
		return c.decryptNative(src, recipients)
	}
	return decryptProgram(src, recipients)
}

// messageRecipients lists the key ids of the session key packets at the
// start of a message, for error messages; 0 is an anonymous recipient
// (gpg --throw-keyids).
func messageRecipients(prefix []byte) []uint64 {
	var ids []uint64
	pr := packet.NewReader(bytes.NewReader(prefix))
	for {
		p, err := pr.Next()
		if err != nil {
			return ids
		}
		ek, ok := p.(*packet.EncryptedKey)
		if !ok {
			return ids
		}
		ids = append(ids, ek.KeyId)
	}
}

func formatKeyIDs(ids []uint64) string {
	if len(ids) == 0 {
		return "an unknown key"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		if id == 0 {
			s[i] = "an anonymous recipient"
		} else {
			s[i] = fmt.Sprintf("0x%016X", id)
		}
	}
	word := "key "
	if len(ids) > 1 {
		word = "keys "
	}
	return word + strings.Join(s, ", ")
}

// errRecorder remembers the source's first real error: go-crypto turns
// errors inside decrypted data into a generic "parsing error" (an oracle
// defence), which would hide e.g. a network failure.
type errRecorder struct {
	r   io.Reader
	mu  sync.Mutex // the gpg path reads in a goroutine of its own
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.mu.Lock()
		if e.err == nil {
			e.err = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *errRecorder) failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// ---- native (WALDEN_GPG_SECRET_KEY_PATH) ----

func (c *Crypter) decryptNative(src *errRecorder, recipients []uint64) (io.ReadCloser, error) {
	md, err := openpgp.ReadMessage(src, c.secret, nil, &packet.Config{})
	if err != nil {
		if ferr := src.failure(); ferr != nil {
			return nil, fmt.Errorf("gpg: reading encrypted object: %w", ferr)
		}
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, fmt.Errorf("gpg: cannot decrypt: the object is encrypted to %s, but %s %s holds only %s",
				formatKeyIDs(recipients), envSecretKey, c.secretPath, formatKeyIDs(decryptionKeyIDs(c.secret)))
		}
		return nil, fmt.Errorf("gpg: decrypting: %v", err)
	}
	if !md.IsEncrypted {
		return nil, errors.New("gpg: object is not an encrypted OpenPGP message")
	}
	return &nativeReader{body: md.UnverifiedBody, src: src}, nil
}

func decryptionKeyIDs(el openpgp.EntityList) []uint64 {
	var ids []uint64
	for _, e := range el {
		for _, k := range privateKeys(e) {
			ids = append(ids, k.KeyId)
		}
	}
	return ids
}

type nativeReader struct {
	body   io.Reader
	src    *errRecorder
	err    error
	closed bool
}

func (n *nativeReader) Read(p []byte) (int, error) {
	if n.closed {
		return 0, errors.New("gpg: read after Close")
	}
	if n.err != nil {
		return 0, n.err
	}
	k, err := n.body.Read(p)
	if err != nil {
		switch {
		case err == io.EOF:
		case n.src.failure() != nil:
			err = fmt.Errorf("gpg: reading encrypted object: %w", n.src.failure())
		case errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("gpg: encrypted object is truncated: %w", err)
		default:
			err = fmt.Errorf("gpg: decryption failed, the object is corrupt or was tampered with: %w", err)
		}
		n.err = err
	}
	return k, err
}

func (n *nativeReader) Close() error {
	n.closed = true
	return nil
}

// ---- gpg program ----

func decryptProgram(src *errRecorder, recipients []uint64) (io.ReadCloser, error) {
	path, err := exec.LookPath(gpgProgram)
	if err != nil {
		return nil, fmt.Errorf("gpg: cannot decrypt: gpg program not found (install GnuPG or set %s): %v", envSecretKey, err)
	}
	// The exact command line WAL-E used; the key comes from the message
	// and passphrases from gpg-agent.
	cmd := exec.Command(path, "-d", "-q", "--batch")
	stderr := &headBuffer{max: stderrLimit}
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("gpg: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("gpg: %v", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("gpg: starting %s: %v", path, err)
	}
	// Our own copier rather than cmd.Stdin: Wait would otherwise wait
	// for it, and after an early Close it may sit in a Read of a stalled
	// source. It ends on the source's next Read (EOF, error, or a write
	// to the pipe that Wait closed).
	go func() {
		_, _ = io.Copy(stdin, src) // read errors are kept by src
		stdin.Close()
	}()
	return &programReader{cmd: cmd, stdout: stdout, stderr: stderr, src: src, recipients: recipients}, nil
}

type programReader struct {
	cmd        *exec.Cmd
	stdout     io.ReadCloser
	stderr     *headBuffer
	src        *errRecorder
	recipients []uint64

	killed   atomic.Bool // Close killed gpg: its death is not an error
	closed   atomic.Bool
	waitOnce sync.Once
	waitErr  error
	final    error // sticky result once stdout ended
}

func (p *programReader) Read(b []byte) (int, error) {
	if p.closed.Load() {
		return 0, errors.New("gpg: read after Close")
	}
	if p.final != nil {
		return 0, p.final
	}
	n, err := p.stdout.Read(b)
	if err == nil {
		return n, nil
	}
	// stdout ended: gpg's exit status decides whether that was success.
	if werr := p.wait(); werr != nil {
		p.final = werr
	} else if err == io.EOF {
		p.final = io.EOF
	} else {
		p.final = fmt.Errorf("gpg: reading plaintext: %w", err)
	}
	return n, p.final
}

// Close kills gpg if it is still running and reaps it. A failure gpg
// reported by itself (exit status) is returned even if the caller stopped
// reading early.
func (p *programReader) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	if p.final != nil {
		return nil // already reaped by Read, which returned the outcome
	}
	p.killed.Store(true)
	_ = p.cmd.Process.Kill() // fails harmlessly if gpg already exited
	return p.wait()
}

// wait reaps gpg once and turns its outcome into walden's error.
func (p *programReader) wait() error {
	p.waitOnce.Do(func() {
		err := p.cmd.Wait()
		var exitErr *exec.ExitError
		switch {
		case err == nil, errors.Is(err, exec.ErrWaitDelay):
			// exit status 0; a lingering stdin copier is not a failure
			// of the decryption.
		case p.killed.Load() && errors.As(err, &exitErr) && signaled(exitErr):
			// our own Kill from Close
		case p.src.failure() != nil:
			p.waitErr = fmt.Errorf("gpg: reading encrypted object: %w", p.src.failure())
		default:
			p.waitErr = fmt.Errorf("gpg -d failed (%v)%s; the object is encrypted to %s",
				err, p.stderr.summary(), formatKeyIDs(p.recipients))
		}
	})
	return p.waitErr
}

func signaled(e *exec.ExitError) bool {
	ws, ok := e.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// headBuffer keeps the first max bytes written to it (gpg's diagnostics)
// and discards the rest, so a chatty gpg cannot grow memory.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// summary returns ": <first line>" of gpg's stderr, plus "; <last line>"
// when they differ (the first line is often a harmless warning and the
// last the actual failure), or "" when gpg said nothing.
func (h *headBuffer) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(h.buf.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		return ""
	case 1:
		return ": " + lines[0]
	}
	return ": " + lines[0] + "; " + lines[len(lines)-1]
}
