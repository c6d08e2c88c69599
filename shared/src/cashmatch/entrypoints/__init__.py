"""Entry points: the CloudEvent edge, the CLI, the Serve app, the jobs."""
