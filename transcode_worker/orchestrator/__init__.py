"""The reference orchestrator: a small, real peer for the worker, following the endpoint map.

It keeps the pool and the jobs in SQLite, picks a worker for each play request by the seeds'
criteria, redirects the player to that worker's playlist, and heals: a worker that goes silent,
sends a death note or reports lost jobs has its jobs re-queued on another worker at their last
known position, under the same job id. The worker is the product; this is what drives it.
"""
