package conversation

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestContent(t *testing.T) {
	for _, c := range []Content{
		{Kind: KindText, Text: "the summit moves to Tuesday"},
		{Kind: KindText, Text: ""},
		{Kind: KindTitle, Text: "Strait crisis, principals only"},
		{Kind: KindAttachment, Data: []byte{1, 2, 3}},
		{Kind: KindCheckpoint, Data: []byte("state.example\n3\nabc=\n")},
		{Kind: KindDesk, Data: []byte(`{"type":"reason","request":"01","reason":"travelling"}`)},
		{Kind: KindText, Text: "with the sender's checkpoint", Checkpoint: []byte("state.example\n4\nabc=\n")},
	} {
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		got, err := UnmarshalContent(b)
		if err != nil || got.Kind != c.Kind || got.Text != c.Text || !bytes.Equal(got.Data, c.Data) || !bytes.Equal(got.Checkpoint, c.Checkpoint) {
			t.Fatalf("round trip %+v: %+v %v", c, got, err)
		}
	}
	for name, c := range map[string]Content{
		"unknown kind":         {Kind: 9},
		"text with data":       {Kind: KindText, Text: "x", Data: []byte{1}},
		"long title":           {Kind: KindTitle, Text: strings.Repeat("t", MaxTitle+1)},
		"attachment with text": {Kind: KindAttachment, Text: "x", Data: []byte{1}},
		"empty attachment":     {Kind: KindAttachment},
		"empty desk document":  {Kind: KindDesk},
		"desk with text":       {Kind: KindDesk, Text: "x", Data: []byte{1}},
		"desk too long":        {Kind: KindDesk, Data: make([]byte, MaxDesk+1)},
		"bad UTF-8":            {Kind: KindText, Text: "\xff"},
		"too long":             {Kind: KindText, Text: strings.Repeat("a", MaxText+1)},
		"long checkpoint":      {Kind: KindText, Checkpoint: make([]byte, MaxCheckpoint+1)},
	} {
		if _, err := c.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	for name, b := range map[string][]byte{"empty": nil, "version 2": {2, 1, 0, 0, 0}, "trailing": {1, 1, 0, 0, 0, 0}, "no checkpoint field": {1, 1, 0, 0}} {
		if _, err := UnmarshalContent(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzUnmarshalContent(f *testing.F) {
	b, _ := Content{Kind: KindText, Text: "hi"}.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalContent(b)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %+v but re-encodes to %x (%v)", b, c, again, err)
		}
	})
}
