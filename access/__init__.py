"""Who may do what: API keys with scopes, their authentication, CORS for publishable keys, throttles."""
