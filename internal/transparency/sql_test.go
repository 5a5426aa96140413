package transparency_test

import (
	"database/sql"

	_ "modernc.org/sqlite"
)

// execSQL edits a database behind the store's back, as an attacker with the
// disk would.
func execSQL(path, q string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(q)
	return err
}
