package client

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"

	"hotline/internal/api"
	"hotline/internal/attach"
)

// GrantRecords is the records officer's device giving grantee a
// conversation's records (count of them), which it has opened from the
// archive's store. The server records and logs the grant first; then
// records makes the grantee's copy for the grant (their JSON, marked for
// the grantee under the grant's ID), which goes to the grantee's devices,
// re-encrypted by MLS, as an attachment in a conversation of the two. The
// server never sees them.
func (c *Client) GrantRecords(ctx context.Context, grantee, conv string, count int, records func(grant string) ([]byte, error)) (api.RecordsGrant, error) {
	var g api.RecordsGrant
	if err := c.Do(ctx, http.MethodPost, "/v1/records/grants", api.RecordsGrant{Grantee: grantee, Conversation: conv, Count: count}, &g); err != nil {
		return g, err
	}
	b, err := records(g.ID)
	if err != nil {
		return g, fmt.Errorf("the grant is logged but the records were not sent: %w", err)
	}
	defer clear(b)
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "Records granted (" + g.ID + ")", Members: []string{grantee}})
	if err != nil {
		return g, fmt.Errorf("the grant is logged but the records were not sent: %w", err)
	}
	if _, err := c.SendAttachment(ctx, info.ID, bytes.NewReader(b), grantFile(g.ID), "application/json"); err != nil {
		return g, fmt.Errorf("the grant is logged but the records were not sent: %w", err)
	}
	return g, nil
}

func grantFile(id string) string { return "records-" + id + ".json" }

// OpenGrant is the grantee's device opening a grant: it has the server log
// the opening first, then returns the records' JSON from the grant's
// conversation.
func (c *Client) OpenGrant(ctx context.Context, id string) (api.RecordsGrant, []byte, error) {
	var g api.RecordsGrant
	if err := c.Do(ctx, http.MethodPost, "/v1/records/grants/"+url.PathEscape(id)+"/read", struct{}{}, &g); err != nil {
		return g, nil, err
	}
	if err := c.Sync(ctx); err != nil {
		return g, nil, err
	}
	convs, err := c.Conversations()
	if err != nil {
		return g, nil, err
	}
	for _, info := range convs {
		ms, err := c.Messages(info.ID)
		if err != nil {
			continue
		}
		for _, m := range ms {
			if m.Kind != "attachment" {
				continue
			}
			d, err := attach.UnmarshalDescriptor(m.Data)
			if err != nil || d.Name != grantFile(id) {
				continue
			}
			var buf bytes.Buffer
			if err := c.DownloadAttachment(ctx, d, &buf); err != nil {
				return g, nil, err
			}
			return g, buf.Bytes(), nil
		}
	}
	return g, nil, fmt.Errorf("the records of grant %s have not reached this device", id)
}

// Grants lists the grants this user holds (all of them, to the records
// officer).
func (c *Client) Grants(ctx context.Context) ([]api.RecordsGrant, error) {
	var out []api.RecordsGrant
	err := c.Do(ctx, http.MethodGet, "/v1/records/grants", nil, &out)
	return out, err
}
