"""Who may do what: API keys with scopes, their authentication, CORS and rate limits."""
