"""Prices and nodes made by hand for the cost tests: a small price book and the nodes Slurm shows."""

from __future__ import annotations

BOOK_DATA = {
    "date": "2026-11-01",
    "interruption_bands": {"<5%": 0.025, "5-10%": 0.075},
    "regions": {"us-east-1": {
        "date": "2026-11-01",
        "ec2": {
            "c7i.xlarge": {"vcpus": 4, "memory_gib": 8, "on_demand": 0.2},
            "c7i.4xlarge": {"vcpus": 16, "memory_gib": 32, "on_demand": 0.8,
                            "spot": [["2026-10-01T00:00:00Z", 0.3], ["2026-10-15T00:00:00Z", 0.4]],
                            "interruption_band": "5-10%"},
            "c6i.4xlarge": {"vcpus": 16, "memory_gib": 32, "on_demand": 0.6,
                            "spot": [["2026-10-01T00:00:00Z", 0.2]], "interruption_band": "<5%"},
            "c6a.4xlarge": {"vcpus": 16, "memory_gib": 32, "on_demand": 0.5,
                            "spot": [["2026-10-01T00:00:00Z", 0.25]], "interruption_band": "<5%"},
            "m7i.4xlarge": {"vcpus": 16, "memory_gib": 64, "on_demand": 0.9,
                            "spot": [["2026-10-01T00:00:00Z", 0.35]], "interruption_band": "<5%"},
            "m6i.4xlarge": {"vcpus": 16, "memory_gib": 64, "on_demand": 0.85,
                            "spot": [["2026-10-01T00:00:00Z", 0.3]], "interruption_band": "<5%"},
            "m6a.4xlarge": {"vcpus": 16, "memory_gib": 64, "on_demand": 0.7,
                            "spot": [["2026-10-01T00:00:00Z", 0.45]], "interruption_band": "5-10%"},
            "f2.6xlarge": {"vcpus": 24, "memory_gib": 256, "on_demand": 2.0},
            "i4i.4xlarge": {"vcpus": 16, "memory_gib": 128, "on_demand": 1.2},
        },
        "storage": {"ebs": {"gp3": 0.1}, "efs": {"standard": 0.3},
                    "fsx_lustre": {"PERSISTENT_2/125": 0.15}},
        "rds": {"date": "2026-10-01", "source": "made by hand", "mysql": {"db.t4g.small": 0.05, "db.t4g.medium": 0.1},
                "storage": {"gp3": 0.2}, "secret_month": 0.5},
    }},
}

SLURM_NODES = [
    {"NodeName": "compute-st-c7i4xl-1", "CPUTot": "4", "RealMemory": "1000", "AvailableFeatures": "static,c7i.4xlarge"},
    {"NodeName": "compute-st-c7i4xl-2", "CPUTot": "4", "RealMemory": "1000", "AvailableFeatures": "static,c7i.4xlarge"},
    # a spot node that came up as the resource's second instance type
    {"NodeName": "spot-st-mixed16-1", "CPUTot": "4", "RealMemory": "1000",
     "AvailableFeatures": "static,c6i.4xlarge,mixed16,spot"},
]
