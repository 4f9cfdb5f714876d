"""`maskrt serve`: maskrt as an HTTP service on Ray Serve (pip install maskrt[ray]).

app.py builds the application (a FastAPI gateway in front of a batched model deployment),
streams.py runs cameras and streams as supervised Ray actors, page.py is the live page at `/`,
metrics.py the Prometheus text of `/metrics`, uploads.py what `POST /v1/segment` accepts.
Importing this package needs Ray (`maskrt[ray]`); the rest of maskrt does not.
"""
