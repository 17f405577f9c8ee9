"""Package set-up generated from settings.ini (the nbdev 2 convention)."""
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

cfg_keys = "version description keywords author author_email".split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected:
    assert o in cfg, f"missing expected setting: {o}"
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable"]
py_versions = "3.10 3.11 3.12 3.13".split()

requirements = shlex.split(cfg.get("requirements", ""))           # the core: models, training, vocoding, export
extras = {name: shlex.split(cfg.get(f"{name}_requirements", "")) for name in ("eval", "corpus", "book")}
# dev: everything, so that `pip install -e ".[dev]"` (README, make venv) still installs all that the book runs
dev_requirements = shlex.split(cfg.get("dev_requirements", "")) + sorted({r for rs in extras.values() for r in rs})
lic = licenses[cfg["license"].lower()]
min_python = cfg["min_python"]
lic = licenses.get(cfg["license"].lower(), (cfg["license"], None))

setuptools.setup(
    name=cfg["lib_name"],
    license=lic[0],
    classifiers=["Development Status :: " + statuses[int(cfg["status"])],
                 "Intended Audience :: " + cfg["audience"].title(),
                 "Natural Language :: " + cfg["language"].title()]
    + ["Programming Language :: Python :: " + o for o in py_versions[py_versions.index(min_python):]]
    + (["License :: " + lic[1]] if lic[1] else []),
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["xtts_book", "xtts_book.*"]),
    include_package_data=True,
    install_requires=requirements,
    extras_require={
        **extras,                     # [eval] the metrics' packages, [corpus] the corpus builders', [book] the notebooks'
        "dev": dev_requirements,
        # CUDA JAX for GPU boxes: pip install -e ".[cuda]"
        "cuda": ["jax[cuda12]>=0.10.2,<0.11"],
        # the PyTorch references used by the parity tests and the benchmark (see tools/install-reference.sh)
        "reference": ["torch==2.13.0"],
        # the site renderer (downloads the Quarto binary at build time: optional)
        "site": ["quarto-cli"],
    },
    dependency_links=cfg.get("dep_links", "").split(),
    python_requires=">=" + cfg["min_python"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={"console_scripts": cfg.get("console_scripts", "").split(), "nbdev": [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"]},
    **setup_cfg,
)
