"""The HTTP routes, one module per audience: the catalogue (anyone), /me (a shopper), /admin."""
