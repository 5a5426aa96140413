package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"time"

	"hotline/internal/api"
	"hotline/internal/conversation"
	"hotline/internal/mls"
)

// KeyPackageDir is the profile directory holding the private halves of the
// device's published key packages, one 0600 file per KeyPackageRef.
const KeyPackageDir = "keypackages"

type keyPackageSecretsFile struct {
	CipherSuite uint16 `json:"cipher_suite"`
	KeyPackage  []byte `json:"key_package"` // the public package, needed to join from a Welcome
	Init        []byte `json:"init"`
	Encryption  []byte `json:"encryption"`
	LastResort  bool   `json:"last_resort,omitempty"` // may be used more than once: kept after a join
}

// leafCapabilities is what this client's leaves support: the suite, and
// the classification extension every Hotline conversation carries (not a
// default extension, so leaves must list it).
func leafCapabilities(cs mls.CipherSuite) mls.Capabilities {
	return mls.DefaultCapabilities(cs, []mls.ExtensionType{conversation.ExtClassification}, nil)
}

// UploadKeyPackages makes n key packages of suite (and a last-resort one
// if asked), signed with the device key and carrying its current
// credential, keeps their private keys in the profile and publishes them.
// They expire with the credential; the device publishes new ones after
// renewing.
func (c *Client) UploadKeyPackages(ctx context.Context, cs mls.CipherSuite, n int, lastResort bool) ([]api.KeyPackageStock, error) {
	suite, err := mls.SuiteFor(cs)
	if err != nil {
		return nil, err
	}
	// Me fetches a credential issued since this device last asked (say it
	// was approved while away) and renews one near expiry.
	if _, err := c.Me(ctx); err != nil {
		return nil, err
	}
	cr, err := c.Credential()
	if err != nil {
		return nil, fmt.Errorf("key packages need a valid credential: %w", err)
	}
	c.mu.Lock()
	credBytes := append([]byte(nil), c.cred...)
	c.mu.Unlock()
	signer, err := mls.NewEd25519Signer(c.sig.CryptoSigner())
	if err != nil {
		return nil, err
	}
	life := mls.Lifetime{NotBefore: uint64(c.now().Add(-time.Hour).Unix()), NotAfter: uint64(cr.Expires.Unix())}
	cred := mls.Credential{Type: mls.CredentialBasic, Identity: credBytes}
	var req api.KeyPackagesUpload
	for i := range n + 1 {
		if i == n && !lastResort {
			break
		}
		kp, sec, err := suite.NewKeyPackage(nil, cred, signer, life, leafCapabilities(cs))
		if err != nil {
			return nil, err
		}
		initB, err := sec.Init.PrivateBytes()
		if err != nil {
			return nil, err
		}
		encB, err := sec.Encryption.PrivateBytes()
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(keyPackageSecretsFile{CipherSuite: uint16(cs), KeyPackage: kp.Marshal(), Init: initB, Encryption: encB, LastResort: i == n})
		clear(initB)
		clear(encB)
		if err != nil {
			return nil, err
		}
		ref := suite.MakeKeyPackageRef(kp.Marshal())
		if err := c.st.WriteFile(path.Join(KeyPackageDir, hex.EncodeToString(ref)), b); err != nil {
			return nil, err
		}
		clear(b)
		msg := (&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp}).Marshal()
		if i == n {
			req.LastResort = msg
		} else {
			req.KeyPackages = append(req.KeyPackages, msg)
		}
	}
	var stock []api.KeyPackageStock
	if err := c.Do(ctx, http.MethodPost, "/v1/keypackages", req, &stock); err != nil {
		return nil, fmt.Errorf("upload key packages: %w", err)
	}
	return stock, nil
}

// ClaimKeyPackages claims one key package of each of user's devices but
// those in except, for adding them to a group.
func (c *Client) ClaimKeyPackages(ctx context.Context, user string, cs mls.CipherSuite, except ...string) ([]api.ClaimedKeyPackage, error) {
	var out []api.ClaimedKeyPackage
	err := c.Do(ctx, http.MethodPost, "/v1/keypackages/claim", api.KeyPackageClaim{User: user, CipherSuite: uint16(cs), Except: except}, &out)
	return out, err
}

// KeyPackageSecrets returns the private keys of one of this device's key
// packages, by KeyPackageRef.
func (c *Client) KeyPackageSecrets(ref []byte) (mls.KeyPackageSecrets, error) {
	_, sec, err := c.keyPackage(ref)
	return sec, err
}

// keyPackage returns one of this device's key packages and its private
// keys, by KeyPackageRef.
func (c *Client) keyPackage(ref []byte) (*mls.KeyPackage, mls.KeyPackageSecrets, error) {
	var sec mls.KeyPackageSecrets
	b, err := c.st.ReadFile(path.Join(KeyPackageDir, hex.EncodeToString(ref)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, sec, fmt.Errorf("no key package %x of this device", ref)
	} else if err != nil {
		return nil, sec, err
	}
	defer clear(b)
	var f keyPackageSecretsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, sec, err
	}
	defer clear(f.Init)
	defer clear(f.Encryption)
	suite, err := mls.SuiteFor(mls.CipherSuite(f.CipherSuite))
	if err != nil {
		return nil, sec, err
	}
	kp, err := mls.UnmarshalKeyPackage(f.KeyPackage)
	if err != nil {
		return nil, sec, err
	}
	if sec.Init, err = suite.ParseHPKEPrivateKey(f.Init); err != nil {
		return nil, sec, err
	}
	sec.Encryption, err = suite.ParseHPKEPrivateKey(f.Encryption)
	return kp, sec, err
}

// KeyPackageTarget is how many key packages of a suite a device keeps on
// the server (the server says when it falls below deliver.LowStock).
const KeyPackageTarget = 20

// EnsureKeyPackages tops this device's key packages of suite up to
// KeyPackageTarget, with a last-resort one, so that others can add it to
// conversations.
func (c *Client) EnsureKeyPackages(ctx context.Context, cs mls.CipherSuite) error {
	var st api.KeyPackageStock
	if err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/keypackages?cipher_suite=%d", cs), nil, &st); err != nil {
		return fmt.Errorf("key package stock: %w", err)
	}
	if st.Ordinary >= KeyPackageTarget/2 && st.LastResort {
		return nil
	}
	_, err := c.UploadKeyPackages(ctx, cs, max(0, KeyPackageTarget-st.Ordinary), !st.LastResort)
	return err
}
