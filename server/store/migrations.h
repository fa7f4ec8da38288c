// Schema migrations of the SQLite store.
//
// migrations/NNNN_name.sql are compiled into topolab_store at build time
// (embed_migrations.cmake), so a scheduler binary carries its schema with it.
// SqliteStore applies those with version > PRAGMA user_version in number
// order, each in its own transaction that also sets user_version.
#ifndef TOPOLAB_SERVER_STORE_MIGRATIONS_H_
#define TOPOLAB_SERVER_STORE_MIGRATIONS_H_

#include <string>
#include <vector>

namespace topolab::server {

struct Migration {
  int version = 0;   // NNNN of the file name; 1, 2, 3, ... without gaps
  std::string name;  // file name, for logs and errors
  std::string sql;   // one or more statements
};

// The migrations embedded in this binary, sorted by version (1..N).
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace topolab::server

#endif  // TOPOLAB_SERVER_STORE_MIGRATIONS_H_
