"""cocalcproxy packaging.  ``pip install .`` installs the package and the twistd plugin."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "cocalcproxy" / "__init__.py").read_text()).group(1)

setup(
    name="cocalcproxy",
    version=VERSION,
    description="Streaming HTTP/WebSocket proxy for multi-user notebook platforms (CoCalc, JupyterHub-style)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # twisted/plugins has no __init__.py on purpose: it is Twisted's namespace.
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"]) + ["twisted.plugins"],
    install_requires=[
        "twisted[tls]>=24.7",
        "treq>=23.11",
        "autobahn>=23.6",
        "pyopenssl>=24.0",
        "service-identity>=24.1",
        "psycopg[binary]>=3.1",
        "prometheus_client>=0.17",
        "tomli>=1.1; python_version<'3.11'",
    ],
    entry_points={"console_scripts": ["cocalcproxy-admin = cocalcproxy.admin:main"]},
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6.100",
            "h11>=0.14",
            "websockets>=12",
            "pytest-timeout>=2.2",
            "websockify>=0.10",
            # a real jupyter-server-proxy package, served unchanged through its entry point
            "hello-jupyter-proxy>=0.2",
            # a real JupyterLab in Chromium through the three hops
            "jupyterlab>=4.1,<5",
            "ipykernel>=6.29",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: Proxy Servers",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
    ],
)
