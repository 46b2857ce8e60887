"""Who may pass, decided without I/O: the hub secret between hub and host,
credentials in a request (cookies, API keys), and the access policy (SPEC §5, §6)."""
