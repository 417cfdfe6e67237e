import streamlit as st

st.title("Library")
st.info("This page is being built.")
