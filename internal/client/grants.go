package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"hotline/internal/api"
	"hotline/internal/attach"
)

// GrantFile is a file that goes with a grant's records: a call's audio.
type GrantFile struct {
	Name, Type string
	Data       []byte
}

// GrantRecords is the records officer's device giving grantee a
// conversation's records (count of them), which it has opened from the
// archive's store. The server records and logs the grant first; then
// records makes the grantee's copy for the grant (their JSON, marked for
// the grantee under the grant's ID, and the files that go with them),
// which goes to the grantee's devices, re-encrypted by MLS, as
// attachments in a conversation of the two. The server never sees them.
func (c *Client) GrantRecords(ctx context.Context, grantee, conv string, count int, records func(grant string) ([]byte, []GrantFile, error)) (api.RecordsGrant, error) {
	var g api.RecordsGrant
	if err := c.Do(ctx, http.MethodPost, "/v1/records/grants", api.RecordsGrant{Grantee: grantee, Conversation: conv, Count: count}, &g); err != nil {
		return g, err
	}
	b, files, err := records(g.ID)
	if err != nil {
		return g, fmt.Errorf("the grant is logged but the records were not sent: %w", err)
	}
	defer func() {
		clear(b)
		for _, f := range files {
			clear(f.Data)
		}
	}()
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "Records granted (" + g.ID + ")", Members: []string{grantee}})
	if err != nil {
		return g, fmt.Errorf("the grant is logged but the records were not sent: %w", err)
	}
	// The files first: the records, last, say the grant is whole.
	for _, f := range files {
		if _, err := c.SendAttachment(ctx, info.ID, bytes.NewReader(f.Data), "records-"+g.ID+"--"+f.Name, f.Type); err != nil {
			return g, fmt.Errorf("the grant is logged but %s was not sent: %w", f.Name, err)
		}
	}
	if _, err := c.SendAttachment(ctx, info.ID, bytes.NewReader(b), grantFile(g.ID), "application/json"); err != nil {
		return g, fmt.Errorf("the grant is logged but the records were not sent: %w", err)
	}
	return g, nil
}

func grantFile(id string) string { return "records-" + id + ".json" }

// GrantedFile is a file that came with a grant's records.
type GrantedFile struct {
	Name string
	d    attach.Descriptor
}

// OpenGrant is the grantee's device opening a grant: it has the server log
// the opening first, then returns the records' JSON from the grant's
// conversation, and the files that came with them (SaveGrantedFile).
func (c *Client) OpenGrant(ctx context.Context, id string) (api.RecordsGrant, []byte, []GrantedFile, error) {
	var g api.RecordsGrant
	if err := c.Do(ctx, http.MethodPost, "/v1/records/grants/"+url.PathEscape(id)+"/read", struct{}{}, &g); err != nil {
		return g, nil, nil, err
	}
	if err := c.Sync(ctx); err != nil {
		return g, nil, nil, err
	}
	convs, err := c.Conversations()
	if err != nil {
		return g, nil, nil, err
	}
	for _, info := range convs {
		ms, err := c.Messages(info.ID)
		if err != nil {
			continue
		}
		var files []GrantedFile
		for _, m := range ms {
			if m.Kind != "attachment" {
				continue
			}
			d, err := attach.UnmarshalDescriptor(m.Data)
			if err != nil {
				continue
			}
			if name, ok := strings.CutPrefix(d.Name, "records-"+id+"--"); ok {
				files = append(files, GrantedFile{Name: name, d: d})
				continue
			}
			if d.Name != grantFile(id) {
				continue
			}
			var buf bytes.Buffer
			if err := c.DownloadAttachment(ctx, d, &buf); err != nil {
				return g, nil, nil, err
			}
			return g, buf.Bytes(), files, nil
		}
	}
	return g, nil, nil, fmt.Errorf("the records of grant %s have not reached this device", id)
}

// SaveGrantedFile fetches a file that came with a grant and writes it,
// decrypted, to w.
func (c *Client) SaveGrantedFile(ctx context.Context, f GrantedFile, w io.Writer) error {
	return c.DownloadAttachment(ctx, f.d, w)
}

// Grants lists the grants this user holds (all of them, to the records
// officer).
func (c *Client) Grants(ctx context.Context) ([]api.RecordsGrant, error) {
	var out []api.RecordsGrant
	err := c.Do(ctx, http.MethodGet, "/v1/records/grants", nil, &out)
	return out, err
}
