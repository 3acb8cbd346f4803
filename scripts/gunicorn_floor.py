"""The least a WSGI app can do to serve a folder's files: open, Content-Length, sendfile.

`make bench` runs it under the worker's own gunicorn worker class beside the worker and nginx, to
show how much of the distance to nginx is gunicorn's and how much is the worker's.
"""
import os

ROOT = os.environ["FLOOR_ROOT"]


def app(environ, start_response):
    file = open(os.path.join(ROOT, os.path.basename(environ["PATH_INFO"])), "rb")
    size = os.fstat(file.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](file)
