package jira

import "strings"

// Node is an Atlassian Document Format node; a document is a Node of Type
// "doc" with Version 1
// (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/).
type Node struct {
	Type    string         `json:"type"`
	Version int            `json:"version,omitempty"`
	Attrs   map[string]any `json:"attrs,omitempty"`
	Content []*Node        `json:"content,omitempty"`
	Text    string         `json:"text,omitempty"`
	Marks   []Mark         `json:"marks,omitempty"`
}

// Mark decorates a text node ("strong", "link" with attrs.href, …).
type Mark struct {
	Type  string         `json:"type"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// Link is a hyperlink rendered as its own paragraph.
type Link struct {
	Text string // shown text; the URL when empty
	URL  string
}

// Document builds an ADF document from plain-text paragraphs (line breaks
// inside a paragraph become hard breaks; empty paragraphs are skipped) and an
// optional trailing link paragraph.
func Document(paragraphs []string, link *Link) *Node {
	doc := &Node{Type: "doc", Version: 1, Content: []*Node{}}
	for _, p := range paragraphs {
		para := &Node{Type: "paragraph"}
		for i, line := range strings.Split(strings.TrimRight(p, "\n"), "\n") {
			if i > 0 {
				para.Content = append(para.Content, &Node{Type: "hardBreak"})
			}
			if line != "" {
				para.Content = append(para.Content, &Node{Type: "text", Text: line})
			}
		}
		if len(para.Content) > 0 {
			doc.Content = append(doc.Content, para)
		}
	}
	if link != nil && link.URL != "" {
		text := link.Text
		if text == "" {
			text = link.URL
		}
		doc.Content = append(doc.Content, &Node{Type: "paragraph", Content: []*Node{{
			Type: "text", Text: text,
			Marks: []Mark{{Type: "link", Attrs: map[string]any{"href": link.URL}}},
		}}})
	}
	return doc
}

// PlainText returns the text of the document, blocks separated by newlines.
func (n *Node) PlainText() string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(n *Node)
	walk = func(n *Node) {
		switch n.Type {
		case "text":
			b.WriteString(n.Text)
		case "hardBreak":
			b.WriteByte('\n')
		}
		for _, c := range n.Content {
			walk(c)
			if c.Type != "text" && c.Type != "hardBreak" && len(c.Content) > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteByte('\n')
			}
		}
	}
	walk(n)
	return strings.TrimRight(b.String(), "\n")
}
