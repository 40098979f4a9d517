"""The built-in authorization server: signing keys, clients, users, tokens, the OAuth endpoints
(SMART Backend Services, authorization code + PKCE), external OpenID Connect issuers."""
