"""Looking at the data and the model: label issues from out-of-fold predictions (`python -m src.audit`),
duplicates and leakage between splits, class activation maps (`python -m src.visualize cam`)."""
