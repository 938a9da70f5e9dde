"""Optional web page and HTTP API (pip install "dmgan[serve]")."""
