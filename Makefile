# Set-up on a fresh machine needs only python3 with venv.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench docs relabel depth families results clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/qcapprox demo

# The suite runs on every core (pytest-xdist); a test file stays on one worker, so its
# module fixtures are built once, and the slowest files start first (tests/conftest.py).
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(PY) benchmarks/enumeration.py

# The docs site (mkdocs.yml, docs/) into site/; any warning fails the build.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

# qcapprox.words.BUNDLED_DOPANTS in the order the issues relabel them, and the training
# store of dopant $$m in a loop.
DOPANTS := Pt Rh Pd Ir
STORE_OF_M := data/training/sc60$$(echo $$m | tr A-Z a-z)13.h5
# Exit status 0 when the store named by the argument holds relaxed labels.
RELAXED_DONE := $(PY) -c "import sys; from qcapprox.store import Store; \
	sys.exit('relaxed' not in Store(sys.argv[1]).labels)"

# The relaxed relabeling of the bundled training sets, in the issues' order (Pt, Rh, Pd,
# Ir), each resuming its committed journal; sets already labelled are skipped, and a failed
# or interrupted run stops the chain. Pt relaxes from the parent geometry; the designs of
# the others are configurations of Pt's, so they start from its relaxed geometries.
START_FROM := data/training/sc60pt13.h5
relabel: $(STAMP)
	for m in $(DOPANTS); do s=$(STORE_OF_M); \
	  if $(RELAXED_DONE) $$s; then echo "$$s: relaxed labels done"; continue; fi; \
	  from=; [ $$s = $(START_FROM) ] || from="--start-from $(START_FROM)"; \
	  $(VENV)/bin/qcapprox label $$s --labels relaxed $$from || exit $$?; \
	done

# The configuration benchmark's held-out sets (enumeration/configurations.toml, every
# distinct configuration of 3, 5 and 7 A4 vacancies) and the depth design
# (enumeration/depth.toml), enumerated and relaxed for every bundled dopant: Pt from the
# parent geometry, the others from Pt's relaxed geometries of the same configurations, as
# the training sets were: the benchmark sets of all four first, then the depth design. Each
# store resumes its committed journal; finished ones are skipped.
CONFIG_STORE := data/benchmark/sc60$$(echo $$m | tr A-Z a-z)13-configurations.h5
DEPTH_STORE := data/training/sc60$$(echo $$m | tr A-Z a-z)13-depth.h5
depth: $(STAMP)
	for r in configurations depth; do for m in $(DOPANTS); do \
	  s=$(CONFIG_STORE); [ $$r = configurations ] || s=$(DEPTH_STORE); \
	  src=$$(echo $$s | sed "s/sc60[a-z]*13/sc60pt13/"); \
	  test -f $$s || $(VENV)/bin/qcapprox enumerate enumeration/$$r.toml -d $$m -o $$s || exit $$?; \
	  if $(RELAXED_DONE) $$s; then echo "$$s: relaxed labels done"; continue; fi; \
	  from=; [ $$m = Pt ] || from="--start-from $$src"; \
	  $(VENV)/bin/qcapprox label $$s --labels relaxed $$from || exit $$?; \
	done; done

# The bundled families on the relaxed labels of every set whose relabeling is done: the RF
# and gradient-boosting families on defect descriptors and on cluster correlations, the
# cluster expansion, and gradient boosting on cluster correlations trained on the
# configurations' own energies (--mapping relaxed-into: the family that ranks
# configurations) first (a minute or a few each), then the three Allegro variants
# (default preset, two limits at once), into calculators/. Finished limits are kept, so a
# stopped run resumes where it stopped.
families: $(STAMP)
	for m in $(DOPANTS); do s=$(STORE_OF_M); \
	  if ! $(RELAXED_DONE) $$s; then echo "$$s: relaxed labels not done yet"; continue; fi; \
	  for b in rf hgb rf-cf hgb-cf ce; do \
	    $(VENV)/bin/qcapprox train $$b -d $$m --registry calculators || exit $$?; \
	  done; \
	  $(VENV)/bin/qcapprox train hgb-cf -d $$m --mapping relaxed-into --registry calculators \
	    || exit $$?; \
	done
	for m in $(DOPANTS); do s=$(STORE_OF_M); \
	  $(RELAXED_DONE) $$s || continue; \
	  for v in ordinary sequential pretrained; do \
	    $(VENV)/bin/qcapprox train allegro -d $$m --variant $$v --jobs 2 \
	      --registry calculators || exit $$?; \
	  done; \
	done

# Rebuild the bundled results from every family shipped in calculators/ (relaxed labels,
# relaxed labels under --mapping relaxed-into, single-point labels): the A4 inference set
# of each bundled dopant, predicted, bundled.
# Predictions of the results bundled before are copied where their member reproduces them.
RESULTS_WORK := runs/results
RESULTS := data/results/sc60m13-inference.h5
results: $(STAMP)
	rm -rf $(RESULTS_WORK) && mkdir -p $(RESULTS_WORK)
	test ! -f $(RESULTS) || cp $(RESULTS) $(RESULTS_WORK)/before.h5
	stores=; for m in $$($(PY) -c "from qcapprox.words import BUNDLED_DOPANTS as D; print(*D)"); do \
	  s=$(RESULTS_WORK)/sc60$$(echo $$m | tr A-Z a-z)13-inference-a4.h5; stores="$$stores $$s"; \
	  $(VENV)/bin/qcapprox enumerate enumeration/inference-a4.toml -d $$m -o $$s || exit 1; \
	  for l in relaxed single-point relaxed-into; do \
	    labels=$$l; [ $$l != relaxed-into ] || labels="relaxed --mapping relaxed-into"; \
	    $(VENV)/bin/qcapprox predict $$s --backbone all --labels $$labels --registry calculators \
	      $$(test ! -f $(RESULTS_WORK)/before.h5 || echo --reuse $(RESULTS_WORK)/before.h5) || exit 1; \
	  done; \
	done; \
	$(VENV)/bin/qcapprox bundle -o $(RESULTS) $$stores

clean:
	rm -rf $(VENV) build *.egg-info
