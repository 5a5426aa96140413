package server

import "net/http"

// userOf reads the {id} of a route on one user: a user ID.
func userOf(r *http.Request) (string, error) {
	id, err := parseUser(r.PathValue("id"))
	if err != nil {
		return "", err
	}
	return id.String(), nil
}
