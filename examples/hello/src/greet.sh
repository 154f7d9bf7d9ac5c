#!/bin/sh
echo "hello from $(uname -s), in $(pwd)"
