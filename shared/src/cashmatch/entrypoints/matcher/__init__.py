"""The matcher's HTTP face: the FastAPI ingress and the Ray Serve app."""
