# make demo: set up .venv (as a normal user: no root, no apt) and run the pipeline of configs/demo.yaml on the
# embedded model (`luyen run`: check and split the data, index the training answers for retrieval, LoRA
# fine-tune, evaluate against zero-shot, few-shot and retrieval, export GGUF), then ask the model three test
# questions in `luyen chat` through a real terminal.
# make test: the same .venv, plus the system tools the tests drive (Debian's chromium), then the whole suite.
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
WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/luyen/wheels/llama-cpp-avx2
DEMO   := runs/demo

.PHONY: setup test-tools demo test bench clean

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "make: python3 is missing; install Python 3.10+ (python.org or your system's package)"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV) || { echo "make: python3 cannot create a venv; install your system's python3-venv package"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	@if [ "$$(uname -m)" = x86_64 ]; then \
		ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
			command -v c++ >/dev/null || { echo "make: llama.cpp (GGUF export) is built from source and needs a C++ compiler; install g++ (Debian: build-essential)"; exit 1; }; \
			echo "building llama.cpp for AVX2 (once, about 5 min)"; \
			CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
				"$(LLAMA_CPP)" -w $(WHEELS); }; \
		$(PY) -m pip install -q --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl; fi
	$(PY) -m pip install -q -e ".[all]"
	@touch $(STAMP)

setup: $(STAMP)

# Test-only system tools: Debian's chromium for the chat page's browser test (playwright drives it and
# never downloads a browser). `make demo` does not need it.
test-tools:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| { echo "make test: install Debian's chromium (sudo apt-get install chromium) for tests/stages/test_serve_browser.py"; exit 1; }

demo: setup
	$(PY) -m luyen models prepare
	$(PY) -m luyen run configs/demo.yaml
	@# the trained model in `luyen chat`, through a real terminal: three test questions, each answer ends on its own
	$(PY) -m pytest -q -s -o addopts=-ra tests/demo
	@echo "report: $(DEMO)/eval/report.html; chat: .venv/bin/luyen chat $(DEMO)/train; serve: .venv/bin/luyen serve $(DEMO)/train"

test: setup test-tools
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/data_throughput.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(DEMO) .pytest_cache
