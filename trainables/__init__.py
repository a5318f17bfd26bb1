"""The worker side: everything that runs inside one Ray Tune trial.

Nothing here imports MLflow or reporting code; the driver (`orchestrator`) never imports a model.
"""
