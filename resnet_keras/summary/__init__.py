"""What is drawn from finished runs: the sweep's index page and results table (`index`), the cross-run
comparisons (`comparisons`), and the committed reference results and the README's block (`reference`)."""
