"""Apache Airflow provider for a centrally orchestrated e-commerce order process."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    #: The provider's version: the package metadata's (pyproject.toml), written nowhere else. Set
    #: before Airflow is imported below: Airflow's configuration reads the provider info
    #: (get_provider_info, which names this version) while it loads.
    __version__ = version("airflow-order-provider")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

# Airflow first: importing it may load the plugins (``[core] lazy_load_plugins = False``), whose
# provider modules read Airflow's version in ``version_compat``; Airflow sets ``__version__`` before
# it loads them.
import airflow  # noqa: E402, F401

from airflow_order_provider.version_compat import require_supported_airflow  # noqa: E402

# Below the floor the provider cannot work: say so in one line, naming both versions (as Airflow's
# own providers do), instead of an ImportError deep inside.
require_supported_airflow("airflow-order-provider", __version__)
