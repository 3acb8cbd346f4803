"""gunicorn configuration for running the worker by hand:

    gunicorn -c conf/gunicorn.conf.py 'transcode_worker.app:create_app()'

`transcode-worker serve` applies the same settings itself; both come from
transcode_worker.server.gunicorn_options, fed by the worker's own configuration
(TRANSCODE_WORKER_CONFIG and TRANSCODE_WORKER_<KEY>).

ONE process, many threads: job state (each job's supervisor thread and its FFmpeg child) lives
in the single worker process. A second process could neither see, seek nor stop the jobs of the
first, so `workers` must stay 1; concurrency for players comes from `threads`.
"""
from transcode_worker.config import load_settings
from transcode_worker.server import gunicorn_options

globals().update(gunicorn_options(load_settings()))
