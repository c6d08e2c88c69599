"""The parts of the serving benchmark; `benchmarks/serve.py` is its entry script.

workload     the model (trained, registered as v1 and v2) and the request bodies
load         closed-loop clients over HTTP and in-process, and the batch rate
servers      the plain uvicorn server (c) and the wait for an HTTP path to answer
deployments  the Ray Serve applications beside the matcher and their replicas
resources    CPU per request by process, and memory, read from /proc
swap         a model swap under steady load
report       plain-text tables
run          one run of everything, in the order the tables print
"""
