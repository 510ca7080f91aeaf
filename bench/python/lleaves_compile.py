"""Compiles a model with lleaves into CACHE and prints the seconds it took.
usage: lleaves_compile.py MODEL_TXT CACHE"""
import json
import sys
import time

import lleaves

start = time.perf_counter()
lleaves.Model(model_file=sys.argv[1]).compile(cache=sys.argv[2])
print(json.dumps({"compile_s": time.perf_counter() - start}))
