"""Read models over the ClickHouse tables (the contract), one module per resource."""
