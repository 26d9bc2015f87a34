"""``dialogsum batch``: summarize JSON Lines files of any size, streaming and resumable.

Two engines share the input rules (:mod:`.rows`) and the output rules (:mod:`.output`): the
``local`` engine (:mod:`.local`, a bounded pool of worker processes on this machine, output in
input order) and the ``ray`` engine (:mod:`.ray_engine`, Ray Data with an actor pool, on a local
Ray or an existing cluster). :func:`dialogsum.batch.job.run_batch` picks one.
"""
