"""One module per app; each defines `APP`, an instance of `rnn_apps.app.App`."""
