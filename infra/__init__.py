"""Private PostgreSQL 16 on AWS RDS or GCP Cloud SQL, provisioned by Pulumi and migrated
through the bastion.

Importing this package (or any module in it) never declares a Pulumi resource.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
