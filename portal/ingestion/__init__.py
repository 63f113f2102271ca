"""Customer files in: format sniffing and archive checks, sheet and header detection, row normalisation."""
