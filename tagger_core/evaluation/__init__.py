"""After scoring: metrics, threshold sweeps, rule optimisation, cross-validation, source
comparison and the HTML report."""
