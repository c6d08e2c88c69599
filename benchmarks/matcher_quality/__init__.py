"""The parts of the quality benchmark; `benchmarks/quality.py` is its entry script.

synthesis     the data: the project simulator or the matcher's toy generator
versus_rules  quality: train on all months but the last two, score those against the rules
speed         speed at scale: each step of each size in a fresh process, then the tables
steps         what each fresh process runs (synthesize, train, predict) and reports
stage_clock   seconds per predict stage, by wrapping the model module's functions
speed_tables  the speed tables: per size, growth between sizes, the targets at 100k
"""
