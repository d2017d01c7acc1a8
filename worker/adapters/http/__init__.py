"""The HTTP door: the API (api.py), the unsubscribe and health pages (pages.py), the request
boundary (io.py), the ports it is handed (context.py) and the server (server.py)."""
