"""The FER Workbench Gradio app (``python spaces/app.py``): the explanation engine's results for
up to three models side by side, on uploads, examples and a live webcam."""
