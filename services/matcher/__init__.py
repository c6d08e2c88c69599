"""The matcher: a Ray Serve application answering match requests over HTTP.

`build_app(MatcherArgs)` is the Serve application builder; `MatcherService` is the model
behind it, usable without Ray.
"""
