"""/v1/sql's pure parts: tenant rewrite, query-tree check, error mapping, DESCRIBE, fair sharing."""
