# make demo: set up .venv and run the pipeline on the embedded model and example data
# (check, prepare, LoRA fine-tune, index the training answers for retrieval, evaluate against
# zero-shot, few-shot and retrieval, export to GGUF, ask the model three test questions in `luyen chat`).
# make test: set up .venv with every extra and run the whole test suite.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.luyen-installed
# The CPU wheel of this exact release: installing it first stops pip from pulling a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# llama.cpp (the gguf extra) is compiled from source. A native build (-march=native) on a CPU with AMX
# crashes in ggml's AMX matmul (seen 2026-12-04, Xeon with AMX), and pip caches the wheel it built, so
# a native wheel from one machine kind could reach another. luyen builds it once for plain AVX2, which
# every x86-64 kind here has, so both kinds run the same llama.cpp kernels, into its own wheel folder.
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
WHEELS := $(HOME)/.cache/luyen/wheels/llama-cpp-avx2
DEMO   := runs/demo

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	@if [ "$$(uname -m)" = x86_64 ]; then \
		ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { echo "building llama.cpp for AVX2 (once, about 5 min)"; \
			CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
				"$(LLAMA_CPP)" -w $(WHEELS); }; \
		$(PY) -m pip install -q --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl; fi
	$(PY) -m pip install -q -e ".[all]"
	@touch $(STAMP)

setup: $(STAMP)
	@# Debian's chromium for the chat page's browser test (playwright drives it; it never downloads a browser)
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| { echo "install Debian's chromium (apt-get install chromium) for tests/stages/test_serve_browser.py"; exit 1; }

demo: setup
	$(PY) -m luyen models prepare
	$(PY) -m luyen data check examples/data/vi_ai_qa.jsonl -c configs/train.yaml
	$(PY) -m luyen data prepare examples/data/vi_ai_qa.jsonl -c configs/train.yaml --out $(DEMO)/data --overwrite
	$(PY) -m luyen train configs/train.yaml --data $(DEMO)/data --out $(DEMO)/train --overwrite
	$(PY) -m luyen rag index $(DEMO)/data/train.jsonl --out $(DEMO)/rag --overwrite
	$(PY) -m luyen eval --model $(DEMO)/train --data $(DEMO)/data --out $(DEMO)/eval --overwrite --rag $(DEMO)/rag configs/train.yaml
	$(PY) -m luyen export $(DEMO)/train --format gguf --quant q8_0 --out $(DEMO)/gguf --overwrite
	@# the trained model in `luyen chat`, through a real terminal: three test questions, each answer ends on its own
	$(PY) -m pytest -q -s -o addopts=-ra tests/demo
	@echo "report: $(DEMO)/eval/report.html; chat: .venv/bin/luyen chat $(DEMO)/train; serve: .venv/bin/luyen serve $(DEMO)/train"

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/data_throughput.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(DEMO) .pytest_cache
