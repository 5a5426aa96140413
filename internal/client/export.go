package client

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/api"
	"hotline/internal/identity"
	"hotline/internal/tlog"
)

// What a device does for an export of records (internal/archive's
// export.go): it proves log entries against the checkpoint it verified,
// has the server log the export, and signs the export's manifest.

// EntryProof is one entry of the transparency log with the proof that the
// tree of Size entries, which a checkpoint signs, holds it (RFC 6962
// inclusion proof, base64 hashes as the log's API gives them).
type EntryProof struct {
	Index int64    `json:"index"`
	Entry []byte   `json:"entry"`
	Size  int64    `json:"size"`
	Proof []string `json:"proof"`
}

// Verify checks the proof against a checkpoint.
func (p EntryProof) Verify(cp tlog.Checkpoint) error {
	if p.Size != cp.Size {
		return fmt.Errorf("the proof is for a log of %d entries, the checkpoint signs %d", p.Size, cp.Size)
	}
	proof, err := tlog.DecodeProof(p.Proof)
	if err != nil {
		return err
	}
	return tlog.VerifyInclusion(proof, p.Index, p.Size, p.Entry, cp.Hash)
}

// ProveEntry returns entry index of the log and its inclusion proof
// against the last checkpoint this device verified, which it returns too
// (signed). It checks the proof before returning it.
func (c *Client) ProveEntry(ctx context.Context, index int64) (EntryProof, []byte, error) {
	signed, err := c.LastCheckpoint()
	if err != nil {
		return EntryProof{}, nil, err
	}
	cp, _, err := tlog.OpenCheckpoint(signed, c.Profile().LogOrigin, c.logVerifiers())
	if err != nil {
		return EntryProof{}, nil, err
	}
	if index < 0 || index >= cp.Size {
		return EntryProof{}, nil, fmt.Errorf("entry %d is not in the verified log of %d entries", index, cp.Size)
	}
	var es api.Entries
	if err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/log/entries?start=%d&end=%d", index, index+1), nil, &es); err != nil {
		return EntryProof{}, nil, err
	}
	if es.Start != index || len(es.Entries) != 1 {
		return EntryProof{}, nil, fmt.Errorf("%w: asked for entry %d, got %d from %d", ErrLogProblem, index, len(es.Entries), es.Start)
	}
	var ip api.InclusionProof
	if err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/log/proof/inclusion?index=%d&size=%d", index, cp.Size), nil, &ip); err != nil {
		return EntryProof{}, nil, err
	}
	p := EntryProof{Index: index, Entry: es.Entries[0], Size: cp.Size, Proof: ip.Proof}
	if err := p.Verify(cp); err != nil {
		return EntryProof{}, nil, fmt.Errorf("%w: %v", ErrLogProblem, err)
	}
	return p, signed, nil
}

// LogExport has the server log an export of records (the records
// officer's): one records.export entry per conversation, naming the
// export by its manifest's SHA-256.
func (c *Client) LogExport(ctx context.Context, manifest [sha256.Size]byte, convs []api.RecordsExportConversation) error {
	return c.Do(ctx, http.MethodPost, "/v1/records/exports", api.RecordsExport{Manifest: fmt.Sprintf("%x", manifest), Conversations: convs}, nil)
}

// exportSigContext separates an export's signature from everything else a
// device key signs (MLS signs with "MLS 1.0 " labels).
const exportSigContext = "hotline records export v1\x00"

// SignExport signs an export's manifest (its SHA-256) with this device's
// key (ExportKey).
func (c *Client) SignExport(manifest [sha256.Size]byte) []byte {
	return c.sig.Sign(append([]byte(exportSigContext), manifest[:]...))
}

// ExportKey is the key that checks this device's signatures of exports:
// its signing key, base64.
func (c *Client) ExportKey() string { return c.sig.Public().String() }

// VerifyExportSignature checks a manifest's signature by a device key
// (base64) and returns the device it names.
func VerifyExportSignature(manifest [sha256.Size]byte, key string, sig []byte) (device string, err error) {
	pub, err := identity.ParsePublicKey(key)
	if err != nil {
		return "", err
	}
	if !pub.Verify(append([]byte(exportSigContext), manifest[:]...), sig) {
		return "", fmt.Errorf("the signature of the manifest does not verify under device %s's key", pub.DeviceID())
	}
	return pub.DeviceID(), nil
}

// LogVerifiers returns the log keys this device trusts and the log's
// origin, to check checkpoints with.
func (c *Client) LogVerifiers() (origin string, v note.Verifiers) {
	return c.Profile().LogOrigin, c.logVerifiers()
}
