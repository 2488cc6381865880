package jiratest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ADF node types Jira accepts
// (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/).
var (
	adfBlock = map[string]bool{
		"paragraph": true, "heading": true, "bulletList": true, "orderedList": true,
		"listItem": true, "blockquote": true, "codeBlock": true, "rule": true,
		"panel": true, "table": true, "tableRow": true, "tableHeader": true,
		"tableCell": true, "mediaSingle": true, "mediaGroup": true, "media": true,
		"expand": true, "nestedExpand": true, "taskList": true, "taskItem": true,
		"decisionList": true, "decisionItem": true, "blockCard": true, "embedCard": true,
		"multiBodiedExtension": true, "extensionFrame": true,
	}
	adfInline = map[string]bool{
		"text": true, "hardBreak": true, "mention": true, "emoji": true,
		"inlineCard": true, "date": true, "status": true, "mediaInline": true,
		"placeholder": true,
	}
	adfMarks = map[string]bool{
		"strong": true, "em": true, "code": true, "link": true, "strike": true,
		"underline": true, "subsup": true, "textColor": true, "backgroundColor": true,
		"alignment": true, "indentation": true, "border": true,
	}
)

type adfNode struct {
	Type    *string           `json:"type"`
	Version *json.Number      `json:"version"`
	Content []json.RawMessage `json:"content"`
	Text    *string           `json:"text"`
	Marks   []struct {
		Type  string         `json:"type"`
		Attrs map[string]any `json:"attrs"`
	} `json:"marks"`
	Attrs map[string]any `json:"attrs"`
}

// validateADF checks that raw is an ADF document: {"type":"doc",
// "version":1,"content":[…]} whose nodes are known ADF nodes, text nodes
// carry non-empty text and link marks an href.
func validateADF(raw json.RawMessage) error {
	var doc adfNode
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("not an object: %w", err)
	}
	if doc.Type == nil || *doc.Type != "doc" {
		return errors.New(`root type must be "doc"`)
	}
	if doc.Version == nil || doc.Version.String() != "1" {
		return errors.New("version must be 1")
	}
	if doc.Content == nil {
		return errors.New("doc needs content")
	}
	for _, c := range doc.Content {
		if err := validateNode(c, 1); err != nil {
			return err
		}
	}
	return nil
}

func validateNode(raw json.RawMessage, depth int) error {
	if depth > 32 {
		return errors.New("document nested too deeply")
	}
	var n adfNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("node is not an object: %w", err)
	}
	if n.Type == nil {
		return errors.New("node without type")
	}
	t := *n.Type
	switch {
	case t == "text":
		if n.Text == nil || *n.Text == "" {
			return errors.New("text node needs non-empty text")
		}
		if n.Content != nil {
			return errors.New("text node cannot have content")
		}
		for _, m := range n.Marks {
			if !adfMarks[m.Type] {
				return fmt.Errorf("unknown mark %q", m.Type)
			}
			if m.Type == "link" {
				if href, _ := m.Attrs["href"].(string); href == "" {
					return errors.New("link mark needs attrs.href")
				}
			}
		}
		return nil
	case adfBlock[t] || adfInline[t]:
	default:
		return fmt.Errorf("unknown node type %q", t)
	}
	for _, c := range n.Content {
		if err := validateNode(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// plainText flattens an ADF document to text, paragraphs separated by
// newlines, as Jira shows it in changelog fromString/toString.
func plainText(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var n adfNode
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	var b strings.Builder
	var walk func(n adfNode)
	walk = func(n adfNode) {
		if n.Text != nil {
			b.WriteString(*n.Text)
		}
		if n.Type != nil && *n.Type == "hardBreak" {
			b.WriteByte('\n')
		}
		for _, c := range n.Content {
			var child adfNode
			if json.Unmarshal(c, &child) == nil {
				walk(child)
				if child.Type != nil && adfBlock[*child.Type] && !strings.HasSuffix(b.String(), "\n") {
					b.WriteByte('\n')
				}
			}
		}
	}
	walk(n)
	return strings.TrimRight(b.String(), "\n")
}
